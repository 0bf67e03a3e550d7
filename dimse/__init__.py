"""DIMSE door (PS3.4/PS3.7): DICOM network ⇄ archive core, on pynetdicom."""
