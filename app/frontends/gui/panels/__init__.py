"""One module per main-window tab. Views hold layout; actions go through the Controller."""
