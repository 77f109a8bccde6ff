"""The pipeline's actors, one module each; `supervisor` is the service's entry actor."""
