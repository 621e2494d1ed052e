"""Canvas-style reports over the tracked tables: the catalogue, parameters, CSV queries and the job runner."""
