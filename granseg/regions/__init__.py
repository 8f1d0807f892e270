"""The package's one classical region hierarchy, used by the ``hierarchy`` predictor and the pseudo-label engine.

* :mod:`~granseg.regions.superpixels`: SLIC superpixels (the leaves of every hierarchy) and snapping masks to them.
* :mod:`~granseg.regions.cues`: CIELAB colour, oriented colour / texture boundary strength, texture codes.
* :mod:`~granseg.regions.gradients`: Pb-like oriented histogram gradients (L, a, b, textons; 3 scales, 8
  orientations).
* :mod:`~granseg.regions.learned`: the merge criterion learned on human segmentations and its merge loop.
* :mod:`~granseg.regions.tree`: the merge tree (ultrametric contour map) over superpixels from those cues.
* :mod:`~granseg.regions.agglomerate`: the greedy pairwise merge loop every tree here is built by.
* :mod:`~granseg.regions.merge`: feature-cosine merging of a region graph on that loop, levels = cuts of its
  tree (the engine's conquer stage, region proposals and stuff pass, from superpixels).
* :mod:`~granseg.regions.chains`: chains of regions under a click, their granularity, scores, masks.
* :mod:`~granseg.regions.colour` and :mod:`~granseg.regions.graphcut`: GrabCut over superpixels for clicks.
* :mod:`~granseg.regions.granularity`: the UnSAMv2 sqrt-area granularity formula.

Nothing here imports from ``granseg.models``, ``granseg.predict`` or above.
"""
