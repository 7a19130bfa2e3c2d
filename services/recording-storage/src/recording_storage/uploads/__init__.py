"""Upload sessions: create one, send its files (resumably), ask how far they got, finish it."""
