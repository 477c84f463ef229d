"""The ground every layer stands on: one-line errors, atomic files and safe loading, stop signals, the version."""
