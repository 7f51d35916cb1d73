"""How the UNet's input channels are laid out, without importing torch.

IC-Portrait feeds the model by concatenating latents along channels (ControlNet/IC-Light style),
so the UNet's ``in_channels`` alone tells which model a folder holds:

- ``base`` (4): a plain SD1.5 UNet; widened (zero-initialised) on load, so it runs unchanged.
- ``iclight-fc`` (8): noisy latent ‖ foreground (reference) latent, IC-Light's "fc" model.
- ``icportrait`` (13): noisy ‖ reference ‖ condition ‖ condition mask (1 = unknown pixel: masked
  patch in Stage 1, not visible after the view warp in Stage 2, 0 at inference).

Kept torch-free so ``validate_model_folder`` (Settings → Models) can use it in the GUI process.
"""

from __future__ import annotations

from dataclasses import dataclass

LATENT_CHANNELS = 4


@dataclass(frozen=True)
class ChannelLayout:
    """Named, ordered channel groups of the UNet input."""

    name: str
    groups: tuple[tuple[str, int], ...]

    @property
    def in_channels(self) -> int:
        return sum(n for _, n in self.groups)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.groups)

    def has(self, group: str) -> bool:
        return group in self.names


def base_layout(latent_channels: int = LATENT_CHANNELS) -> ChannelLayout:
    return ChannelLayout("base", (("noisy", latent_channels),))


def iclight_layout(latent_channels: int = LATENT_CHANNELS) -> ChannelLayout:
    return ChannelLayout("iclight-fc", (("noisy", latent_channels), ("reference", latent_channels)))


def icportrait_layout(latent_channels: int = LATENT_CHANNELS) -> ChannelLayout:
    c = latent_channels
    return ChannelLayout("icportrait", (("noisy", c), ("reference", c), ("condition", c), ("mask", 1)))


LAYOUTS = {"base": base_layout, "iclight-fc": iclight_layout, "icportrait": icportrait_layout}


def layout_by_name(name: str, latent_channels: int = LATENT_CHANNELS) -> ChannelLayout:
    try:
        return LAYOUTS[name](latent_channels)
    except KeyError:
        raise ValueError(f"unknown channel layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def layout_for_in_channels(in_channels: int, latent_channels: int = LATENT_CHANNELS) -> ChannelLayout | None:
    """The layout a UNet with ``in_channels`` inputs uses, or None when it is none of ours."""
    for make in LAYOUTS.values():
        layout = make(latent_channels)
        if layout.in_channels == in_channels:
            return layout
    return None
