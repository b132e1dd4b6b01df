"""One training run: data -> model -> regularizers -> epochs -> metrics."""
