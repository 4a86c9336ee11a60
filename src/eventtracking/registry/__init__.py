"""Documented event and context types: registration, versions and validation."""

from __future__ import annotations

from .catalogue_file import load_catalogue
from .model import POLICIES, FieldSpec, Policy, TypeVersion, content_id, version_from_dict
from .registry import Registry, metadata_for, referenced_ids, remember, unseen_metadata
from .validate import Problem, Validator, compile_validator

__all__ = [
    "POLICIES",
    "FieldSpec",
    "Policy",
    "Problem",
    "Registry",
    "TypeVersion",
    "Validator",
    "compile_validator",
    "content_id",
    "load_catalogue",
    "metadata_for",
    "referenced_ids",
    "remember",
    "unseen_metadata",
    "version_from_dict",
]
