# The treekite binary, for depots that install their tools through Nix
# (e.g. on Buildkite agents). `default.nix` gives it as `package`, called
# with the depot's nixpkgs; standalone it is a usual nixpkgs package:
#
#   nix-build -E 'with import <nixpkgs> { }; callPackage ./package.nix { }'
#
# It lives at the repository root, not under nix/, because readTree imports
# every file under nix/ as a node called with the depot's arguments.
#
# The source is only what the crate compiles from (Cargo.toml, Cargo.lock,
# src/), so editing tests, docs or examples does not rebuild it, and a
# checkout's target/ or result links never reach the store. The tests are
# not run in the build: they need a Nix store and build derivations in it.
{ lib, rustPlatform }:

let
  crate = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package;

  root = toString ./.;
  kept = [ "Cargo.toml" "Cargo.lock" "src" ];
  # `path` is absolute; keep it when it is one of `kept` or lies below one.
  isKept = path: _type:
    let
      inherit (builtins) any stringLength substring;
      relative = substring (stringLength root + 1) (stringLength path) path;
      below = k: substring 0 (stringLength k + 1) relative == "${k}/";
    in
    any (k: relative == k || below k) kept;
in
rustPlatform.buildRustPackage {
  pname = "treekite";
  inherit (crate) version;

  src = builtins.path {
    path = ./.;
    # A fixed name: the source's store path does not depend on the name of
    # the folder treekite is checked out or vendored in.
    name = "treekite-source";
    filter = isKept;
  };
  cargoLock.lockFile = ./Cargo.lock;

  doCheck = false;

  meta = {
    inherit (crate) description;
    license = lib.licenses.mit;
    mainProgram = "treekite";
  };
}
