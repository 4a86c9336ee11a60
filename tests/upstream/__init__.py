"""Drop-in checks against the original event-tracking 4.0.2 (downloaded at test time).

`run_upstream.py` runs the original's own tests against ours;
`tracking_log_corpus.py` writes a tracking.log in either implementation;
`openedx_standins.py` holds the Open edX settings trees and stand-in processors.
"""
