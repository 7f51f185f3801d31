# Depends on //libs/greeting: its step waits for that one.
{ depot, ... }:

depot.lib.run "shout" { greeting = depot.libs.greeting; } ''
  ${depot.lib.busybox} mkdir -p $out
  ${depot.lib.busybox} tr a-z A-Z < $greeting/greeting.txt > $out/shout.txt
''
