"""Offline data-set builders: they write the shards that ``lit_rpe.training.data`` streams.

- ``make_shards``: an image tree (ImageNet layout or class-per-folder) -> shards and
  ``classes.json`` (``python -m lit_rpe.prep.make_shards``); ``image_tree`` finds the
  labelled images of such a tree.
- ``photos``: the embedded photo set, from photographs that installed packages ship
  (``python data/build_photos.py``).
- ``shapes`` / ``shapes_shards``: the generated shapes set, one coloured object per image,
  rendered at any resolution from a seeded scene record (``python data/build_shapes.py``).
- ``precompute_latents``: image shards -> SD-VAE latent shards
  (``python -m lit_rpe.prep.precompute_latents``).
- ``shard_writer``: resumable, parallel, byte-deterministic writing of a shard set.

Nothing is imported here: each builder is a module of its own, imported by name.
"""
