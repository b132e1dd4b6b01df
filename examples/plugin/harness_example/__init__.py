"""An example harness plug-in: a tiny model, a tiny dataset and a toy regularizer."""
