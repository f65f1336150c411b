"""Basic pieces every layer uses: time units and parsing, clocks, the message bus."""
