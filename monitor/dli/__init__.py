"""Everything that speaks the DLI HTTP API: records, errors, signing and the client."""
