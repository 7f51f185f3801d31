# An application with extra steps: a smoke test of its output, a lint that
# is allowed to fail, and a deployment behind a prompt in the release phase.
{ depot, ... }:

let
  inherit (depot.lib) busybox run writeScript;
in
run "hello" { shout = depot.libs.shout; } ''
  ${busybox} mkdir -p $out/bin
  echo "#!${busybox} sh" > $out/bin/hello
  echo "${busybox} cat $shout/shout.txt" >> $out/bin/hello
  ${busybox} chmod +x $out/bin/hello
'' // {
  meta.ci.extraSteps = {
    smoke = {
      label = "smoke test";
      # The step builds hello first and links it at ./result.
      needsOutput = true;
      command = writeScript "hello-smoke" ''
        echo "smoke: running ./result/bin/hello"
        ./result/bin/hello
      '';
    };

    lint = {
      softFail = true;
      command = writeScript "hello-lint" ''
        echo "lint: hello has no manual page (a soft failure)"
        exit 1
      '';
    };

    deploy = {
      phase = "release";
      prompt = "Deploy hello?";
      branches = [ "main" ];
      command = writeScript "hello-deploy" ''
        echo "deploy: would ship hello now"
      '';
    };
  };
}
