"""Studies: a YAML file expanded into runs, executed through a queue by local or remote workers."""
