# An example depot: a few targets laid out with readTree and built with
# busybox only, and the pipeline for them.
#
#   treekite pipeline --root examples -A ci.pipeline --out /tmp/pipeline
#   treekite run /tmp/pipeline --root examples
#
# In your own depot this file is the repository's top-level default.nix, and
# `../nix` is wherever you keep treekite's Nix library.
{
  # A drvmap.json from an earlier build (e.g. of the main branch): targets
  # whose derivation did not change since then are skipped.
  parentDrvmap ? null
, ...
}:

let
  readTree = import ../nix/readTree { };
  buildkite = import ../nix/buildkite { };

  depot = readTree.fix (self: readTree {
    path = ./.;
    args = { depot = self; };
  });

  isTarget = node: (node.type or null) == "derivation";
in
depot // {
  ci = rec {
    targets = readTree.gather isTarget depot;

    pipeline = buildkite.mkPipeline {
      headBranch = "main";
      drvTargets = targets;
      parentTargetMap =
        if parentDrvmap == null then { }
        else builtins.fromJSON (builtins.readFile parentDrvmap);
    };
  };
}
