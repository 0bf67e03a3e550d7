"""The research-commons extension: clinical data, LOINC harmonization, sites, cohorts.

`register(core)` plugs it into the core's extension points; nothing else in the core knows
about it. QIDO-RS keys `commons.*` are compiled by `filters.compile_filter`, `includefield=
commons.*` values come from `attributes.result_attributes`, harmonization runs as an index hook
inside the ingest transaction, and the dataset enricher names batches.
"""

from __future__ import annotations

from archive.commons.harmonize import harmonize_study
from archive.commons.sites import attribute_dataset
from archive.core import Core
from archive.index.commons_attributes import result_attributes
from archive.index.commons_fields import PREFIX
from archive.index.commons_filters import compile_filter


def register(core: Core) -> None:
    ext = core.extensions
    if PREFIX in ext.filters:
        return  # already registered
    ext.filters[PREFIX] = compile_filter
    ext.result_attributes[PREFIX] = result_attributes
    ext.index_hooks.append(harmonize_study)
    ext.enrichers.append(attribute_dataset)
    from archive.commons.suggest import SuggestionService

    core.suggestions = SuggestionService()  # one per Core; built on the first suggestion
    from archive.commons import deidentify

    if deidentify.check(core.settings):
        ext.pre_store.append(deidentify.deidentify_hook)
    if core.settings.release_workflow:
        from archive.commons.releases import staging_enricher

        ext.enrichers.append(staging_enricher(core.settings.default_collection))
