"""The example app: a page that emits from the browser, a view that emits on commit."""
