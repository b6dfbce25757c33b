"""Multi-process jobs: ranks (:mod:`.world`), how they start (:mod:`.launch`), Lightning
strategies (:mod:`.strategies`, :mod:`.fsdp`) and the memory plan (:mod:`.memory`)."""
