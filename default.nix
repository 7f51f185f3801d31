# treekite as a readTree depot: `import ./. {}` gives `nix.readTree`,
# `nix.buildkite` and the rest of the Nix library, with nothing but
# `builtins`. `pkgs` and `lib` are passed on when given.
#
# Only the folders below hold Nix code, and only they are read, so that
# evaluating never walks target/, src/, tests/ or .git/.
#
# Vendored in a depot (e.g. at third_party/treekite), this file is what the
# depot's readTree imports, with the depot's arguments (`depot`, `pkgs`,
# `lib`, `locatedAt`, …): `.skip-subtree` beside it keeps that readTree out
# of everything else here (examples/ and tests/ would be imported with the
# wrong arguments). That readTree marks the result as a node with no
# children, so `readTree.gather` finds no target in treekite: not the
# library, and not `package`. A depot that wants the binary built by its CI
# makes a node of its own for it (see the README).
#
# `package` is the treekite binary (package.nix), built with the depot's
# nixpkgs; without `pkgs` it throws, saying what to pass.
{ pkgs ? null, lib ? null, locatedAt ? [ ], ... }:

let
  readTree = import ./nix/readTree { };
  folders = [ "nix" ];

  # Where a depot put us, for messages: `third_party.treekite.package`.
  packageAttr = builtins.concatStringsSep "." (locatedAt ++ [ "package" ]);
  package =
    if pkgs == null
    then throw "treekite: ${packageAttr} builds the treekite binary with nixpkgs, but no `pkgs` was given; pass nixpkgs as `pkgs` (in the depot's readTree args, or `--arg pkgs 'import <nixpkgs> { }'`), or install treekite with `cargo install --locked --path <treekite checkout>`"
    else pkgs.callPackage ./package.nix { };
in
readTree.fix (depot:
  let
    read = name: {
      inherit name;
      value = readTree {
        path = ./. + "/${name}";
        args = { inherit depot pkgs lib; };
        # Locations are true in the depot that vendors us, too.
        prefix = locatedAt ++ [ name ];
      };
    };
  in
  builtins.listToAttrs (map read folders) // {
    inherit package;
    __readTree = locatedAt;
    __readTreeChildren = folders;
  })
