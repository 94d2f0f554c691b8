"""`imlgcn compare`: arm sets trained over seeds, paired statistics, and the sizes comparison."""
