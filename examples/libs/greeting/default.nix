# A library with two outputs: the greeting itself, and its documentation.
{ depot, ... }:

depot.lib.run "greeting" { outputs = [ "out" "doc" ]; } ''
  ${depot.lib.busybox} mkdir -p $out $doc
  echo "Hello, world" > $out/greeting.txt
  echo "greeting.txt holds a friendly greeting." > $doc/README
''
