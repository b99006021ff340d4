"""The pure core: a job's states and readings, the snapshot that turns a fresh listing into
changes, the compact records it tracks, and what was learnt of the API's behaviour. No I/O and
no import from any other layer: it is tested in isolation, fast."""
