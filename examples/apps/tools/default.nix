# A node that is not itself a target, with a subtarget: //apps/tools:fmt.
{ depot, ... }:

{
  fmt = depot.lib.run "fmt" { } ''
    echo "a formatter" > $out
  '';

  # Not listed in meta.ci.targets, so CI does not build it.
  scratch = depot.lib.run "scratch" { } "exit 1";

  meta.ci.targets = [ "fmt" ];
}
