"""DICOMweb door (PS3.18): HTTP ⇄ archive core, on aiohttp."""
