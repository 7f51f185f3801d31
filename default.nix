# treekite as a readTree depot: `import ./. {}` gives `nix.readTree`,
# `nix.buildkite` and the rest of the Nix library, with nothing but
# `builtins`. `pkgs` and `lib` are passed on when given.
#
# Only the folders below hold Nix code, and only they are read, so that
# evaluating never walks target/, src/, tests/ or .git/.
{ pkgs ? null, lib ? null, ... }:

let
  readTree = import ./nix/readTree { };
  folders = [ "nix" ];
in
readTree.fix (depot:
  let
    read = name: {
      inherit name;
      value = readTree {
        path = ./. + "/${name}";
        args = { inherit depot pkgs lib; };
        prefix = [ name ];
      };
    };
  in
  builtins.listToAttrs (map read folders) // {
    __readTree = [ ];
    __readTreeChildren = folders;
  })
