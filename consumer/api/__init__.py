"""The HTTP API (`canvas-progress serve`): Canvas-style Account Reports, Course Reports and Progress."""
