"""Synthesised view-consistent training pairs (see ``icportrait_studio.synth.dataset``)."""
