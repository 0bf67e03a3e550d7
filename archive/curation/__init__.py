"""Commons curation algorithms (issue 16): pure functions, no database, no HTTP.

- `strata` / `sequester`: stratified, sticky open/sequestered split of whole cases;
- `testsets`: task-based (quota) test sets drawn from the sequestered pool;
- `loinc_suggest`: suggested LOINC Playbook codes for unmapped study descriptions;
- `phi`: PS3.15 E.1 PHI findings and optional de-identification.
The HTTP routes and CLI call these with rows they read from the index.
"""
