# Used by `treekite build`/`exec` when a target's .drv has been garbage-
# collected: walk an attribute path (given as JSON data, never pasted into
# Nix source) below `import root {}`.
#
# With `instantiate = true` (for plain `nix-instantiate --add-root`, which
# roots the fresh .drv) it gives the derivation, or an empty set (nothing
# to instantiate) when there is none; otherwise it reports, as data, what
# is there, for the error message.
{ root, attrPathJSON, instantiate ? false }:
let
  attrPath = builtins.fromJSON attrPathJSON;
  step = found: name:
    if found ? missing then found
    else if builtins.isAttrs found.value && builtins.hasAttr name found.value
    then { value = builtins.getAttr name found.value; at = found.at ++ [ name ]; }
    else { missing = name; inherit (found) at; type = builtins.typeOf found.value; };
  found = builtins.foldl' step { value = import root { }; at = [ ]; } attrPath;
  isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";
  derivation = !(found ? missing) && isDerivation found.value;
in
if instantiate then (if derivation then found.value else { })
else if found ? missing then { inherit (found) missing at type; }
else if derivation then { drvPath = found.value.drvPath; }
else { notDerivation = builtins.typeOf found.value; }
