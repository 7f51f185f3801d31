# Buildkite pipelines for readTree depots, as plain data.
#
# Everything here is evaluation only: a pipeline is made of strings that name
# `.drv` files, and the steps realise what they need when they run (through
# `treekite build` and `treekite exec`). Nothing is built to make a pipeline:
# no wrapper scripts, no chunk files, no extra-step commands.
#
# `treekite pipeline -A <attr>` evaluates a `mkPipeline` result and writes
# its chunks; it also adds `depends_on` edges found in the derivation graph,
# which the evaluator is too slow to find in large depots.
{ depot ? null, pkgs ? null, lib ? null, ... }:

let
  inherit (builtins)
    attrNames
    concatLists
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    genList
    getAttr
    hasAttr
    hashString
    head
    isAttrs
    isList
    isString
    length
    listToAttrs
    map
    removeAttrs
    replaceStrings
    split
    stringLength
    substring
    toJSON
    unsafeDiscardStringContext
    ;

  readTree = import ../readTree { };

  # Buildkite interpolates `$` in every string of an upload, so each `$`
  # must be written `$$`. A `$` after an odd run of backslashes would be read
  # as an escaped `\$` instead; `oddFill` goes between the run and the `$$`
  # to keep them apart.
  #
  # Most text holds no `$`, and `split` compiles its regular expression on
  # every call, so that case returns at once.
  escapeDollars = oddFill: s:
    if replaceStrings [ "$" ] [ "" ] s == s then s
    else concatStringsSep "" (map
      (part:
        if isString part then part
        else
          let run = head part;
          in run + (if (stringLength run) / 2 * 2 != stringLength run then oddFill else "") + "$$")
      (split "(\\\\*)\\$" s));

  # For labels and other text Buildkite shows: a `\` before a `$` may come
  # out doubled, but nothing is ever substituted.
  uploadText = escapeDollars "\\";

  # True when `s` holds neither `'` nor `$`: single quotes alone then make
  # it one shell word that Buildkite leaves alone. Most words are plain
  # (store paths, most names), and checking is cheaper than escaping.
  isPlain = s: replaceStrings [ "'" "$" ] [ "" "" ] s == s;

  # `s` as one shell word, single-quoted. Inside the quotes `''` is empty,
  # so it can separate a backslash from a `$` without changing the word.
  # `plain` says that `isPlain s` is already known to hold, which spares
  # the work; false is always correct.
  quoteWord = plain: s:
    if plain then "'" + s + "'"
    else escapeDollars "''" ("'" + replaceStrings [ "'" ] [ "'\\''" ] s + "'");

  # One shell word, single-quoted.
  shellArg = s: quoteWord (isPlain s) s;

  # A derivation's drvPath as one shell word. When the string is exactly
  # the store path its context names (as for every real derivation), it
  # holds only what Nix allows in store path names, none of which needs
  # quoting, unless the store directory does: checking that context is
  # cheaper than looking at every character. (The plain case is
  # `quoteWord true drvPath` written out: this runs for every target.)
  getContext = builtins.getContext or null;
  storeDirPlain = getContext != null && isPlain builtins.storeDir;
  drvArg = rawDrvPath: drvPath:
    if storeDirPlain && attrNames (getContext rawDrvPath) == [ drvPath ] then "'${drvPath}'"
    else shellArg drvPath;

  # A treekite command line, from pieces already quoted for the shell and
  # for Buildkite: `treekiteText` (the command: `uploadText` of
  # mkPipeline's `treekite`), the subcommand, and its arguments as one
  # string of words. `treekite pipeline` writes batched `treekite build`
  # lines the same way, from `settings.treekite` and each target's
  # `buildArgs`.
  #
  # A pipeline applies it to its first two arguments once, so the prefix
  # is joined once; each step then adds one string. That is cheaper than
  # the three-part concatenation it replaces, and a list of words would
  # cost more.
  treekiteCommand = treekiteText: subcommand:
    let prefix = treekiteText + " " + subcommand + " ";
    in args: prefix + args;

  # How `treekite build` and `treekite exec` are told which derivation to
  # use: `--drv` and its `.drv` file, then `--attr-path` and the attribute
  # path (as JSON) that makes it again if the file is gone, unless
  # `attrPathJSON` is null. `rawDrvPath` is the drvPath with its context,
  # `drvPath` the same without (see `drvArg`); `plain` as for `quoteWord`.
  # A target's `buildArgs` is this, written out (see mkTargetGroup).
  drvFlags = rawDrvPath: drvPath: plain: attrPathJSON:
    "--drv " + drvArg rawDrvPath drvPath
    + (if attrPathJSON == null then "" else " --attr-path " + quoteWord plain attrPathJSON);

  # `--out-link`, for `treekite build`: where to link the output.
  outLinkFlag = outLinkWord: " --out-link " + outLinkWord;

  # Extra steps that `needsOutput` find their parent's output at ./result.
  resultLinkFlag = outLinkFlag (shellArg "result");

  # Guard for step fields whose values are user text: Buildkite refuses a
  # skip reason over 70 characters.
  skipReason = fallback: reason:
    if isString reason && reason != "" && stringLength reason <= 70 then uploadText reason else fallback;

  # The attribute path of a target below the depot root.
  targetAttrPath = target:
    target.__readTree ++ (if target ? __subtarget then [ target.__subtarget ] else [ ]);

  isDerivation = x: isAttrs x && (x.type or null) == "derivation";

  # builtins.groupBy arrived in Nix 2.5; the fallback is slower but works.
  groupBy = builtins.groupBy or (f: foldl' (acc: x: let k = f x; in acc // { ${k} = (acc.${k} or [ ]) ++ [ x ]; }) { });

  # Jobs Buildkite creates for a step: a group counts itself and its steps.
  jobsOf = step: if isAttrs step && step ? group then 1 + length (step.steps or [ ]) else 1;

  # Splits steps into chunks of at most `size` jobs each, keeping order.
  # When no step is a group, every step is one job and the chunks are
  # plain slices, found without a pass over the steps.
  chunksOf = size: steps:
    if builtins.any (step: step ? group) steps
    then chunksByJobs size steps
    else slicesOf (if size < 1 then 1 else size) steps;

  # Chunk boundaries are found in one pass; the chunks are then sliced out,
  # so the work is linear in the number of steps.
  chunksByJobs = size: steps:
    let
      bounds = foldl'
        (acc: step:
          let
            jobs = jobsOf step;
            fits = acc.jobs + jobs <= size || acc.count == 0;
            next =
              if fits then { inherit (acc) starts; count = acc.count + 1; jobs = acc.jobs + jobs; next = acc.next + 1; }
              else { starts = acc.starts ++ [{ start = acc.next - acc.count; inherit (acc) count; }]; count = 1; inherit jobs; next = acc.next + 1; };
          in
          builtins.seq next.count (builtins.seq next.jobs next))
        { starts = [ ]; count = 0; jobs = 0; next = 0; }
        steps;
      all = bounds.starts ++ (if bounds.count > 0 then [{ start = bounds.next - bounds.count; inherit (bounds) count; }] else [ ]);
    in
    map (c: genList (i: elemAt steps (c.start + i)) c.count) all;

  # Consecutive slices of `size` (at least 1) items, the last one shorter.
  slicesOf = size: list:
    let n = length list;
    in genList
      (c: let start = c * size; in genList (i: elemAt list (start + i)) (if n - start < size then n - start else size))
      ((n + size - 1) / size);

  # The step key for a `.drv` path (a string without context): its hash,
  # which is unique per derivation and safe in keys (at most 100
  # characters, no odd characters).
  drvKey = drvPath: "drv-" + substring 0 32 (baseNameOf drvPath);

  /**
    The key of the step that builds a derivation: `drv-` and the first 32
    characters of its `.drv` file's hash, unique per derivation and safe as
    a Buildkite key. Other steps name it in `depends_on`.

    # Inputs

    `drvOrPath`

    : 1\. A derivation, or its `.drv` path.

    # Type

    ```
    keyForDrv :: (Derivation | String) -> String
    ```

    # Examples
    :::{.example}
    ## `buildkite.keyForDrv` usage example

    ```nix
    buildkite.keyForDrv "/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv"
    => "drv-8w5pib2c6z6ms8gwy722iqh0970jlick"
    buildkite.keyForDrv depot.tools.cheddar
    => "drv-8w5pib2c6z6ms8gwy722iqh0970jlick"
    ```

    :::
  */
  keyForDrv = drvOrPath:
    let
      drvPath =
        if isDerivation drvOrPath then drvOrPath.drvPath
        else if isString drvOrPath then drvOrPath
        else throw "keyForDrv: expected a derivation or a .drv path, got a ${builtins.typeOf drvOrPath}";
    in
    drvKey (unsafeDiscardStringContext drvPath);

  /**
    The command a step runs to build a derivation: `treekite build`, which
    realises the `.drv` (or, if it was garbage-collected, evaluates
    `attrPath` again) and prints its store path. Every argument is quoted
    for the shell and for Buildkite's interpolation, so the result is ready
    for a pipeline upload whatever characters the names hold.

    # Inputs

    Structured function argument

    : `attrPath`
      : The target's attribute path below the depot root, or `null` to
        rely on the `.drv` alone.

      `drvPath`
      : The derivation's `.drv` path.

      `outLink` (optional, default: `null`)
      : Where to link the output (relative to the step's working
        directory); `null` keeps treekite's own link, outside the checkout.

      `treekite` (optional, default: `"treekite"`)
      : How the step calls treekite: a command or an absolute path.

    # Type

    ```
    mkBuildCommand :: {
      attrPath :: [String] | Null;
      drvPath :: String;
      outLink ? String | Null;
      treekite ? String;
    } -> String
    ```

    # Examples
    :::{.example}
    ## `buildkite.mkBuildCommand` usage example

    ```nix
    buildkite.mkBuildCommand {
      attrPath = [ "tools" "cheddar" ];
      drvPath = "/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv";
      outLink = "result";
    }
    => "treekite build --drv '/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv' --attr-path '[\"tools\",\"cheddar\"]' --out-link 'result'"
    ```

    :::
  */
  mkBuildCommand = { attrPath, drvPath, outLink ? null, treekite ? "treekite" }:
    treekiteCommand (uploadText treekite) "build"
      (drvFlags drvPath (unsafeDiscardStringContext drvPath) false (if attrPath == null then null else toJSON attrPath)
      + (if outLink == null then "" else outLinkFlag (shellArg outLink)));

  # A drvmap from `{ label, drvPath, attrPath }` sets.
  drvmapOf = entries: listToAttrs (map (e: { name = e.label; value = { inherit (e) drvPath attrPath; }; }) entries);

  /**
    The drvmap of a build: each target's label mapped to its `.drv` path
    and attribute path (TVL's format). A later build passes it as
    `parentTargetMap` to skip the targets whose derivation did not change.
    Targets skipped by their metadata (`meta.broken`, `meta.ci.skip`) are
    left out, and their `drvPath` is never evaluated.

    # Inputs

    `drvTargets`

    : 1\. Targets as gathered by `readTree.gather`.

    # Type

    ```
    mkDrvmap :: [AttrSet] -> { <label> :: { drvPath :: String; attrPath :: [String]; }; }
    ```

    # Examples
    :::{.example}
    ## `buildkite.mkDrvmap` usage example

    ```nix
    buildkite.mkDrvmap (readTree.gather (t: (t.type or null) == "derivation") depot)
    => {
      "tools/cheddar" = {
        drvPath = "/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv";
        attrPath = [ "tools" "cheddar" ];
      };
      "web/site:css" = {
        drvPath = "/nix/store/0ak3zvyjfhadm0y3nscbsrdbbpa38wdl-css.drv";
        attrPath = [ "web" "site" "css" ];
      };
      …
    }
    ```

    :::
  */
  mkDrvmap = drvTargets: drvmapOf (map
    (target: {
      label = readTree.mkLabel target;
      drvPath = unsafeDiscardStringContext target.drvPath;
      attrPath = targetAttrPath target;
    })
    (filter (t: !(skippedByMeta t)) drvTargets));

  /**
    The Buildkite pipeline for a depot's targets, as plain data: it holds
    no derivation, so `nix-instantiate --eval --strict --json` prints it
    without building anything, and `treekite pipeline` writes it out as
    chunk files ready for `buildkite-agent pipeline upload`.

    Each target gets a step (`label = ":nix: <label>"`, `key` from
    `keyForDrv`, `command` as from `mkBuildCommand`, `skip`,
    `env.READTREE_TARGET`, `depends_on`); targets that are the same
    derivation share one. A target skipped by its metadata gets a step
    that is skipped, keyed `skipped-…`, and its `drvPath` is never
    evaluated. Each of its `meta.ci.extraSteps` gets a step
    running its script with `treekite exec`, in the build phase right after
    it or in the phase it names; a step with a `prompt` is a group holding
    a block step and the step.

    # Inputs

    Structured function argument

    : `headBranch`
      : The branch whose builds are the baseline. Kept for TVL
        compatibility: what skips is `parentTargetMap`.

      `drvTargets`
      : Targets as gathered by `readTree.gather`.

      `parentTargetMap` (optional, default: `{ }`)
      : The drvmap (`mkDrvmap`) of an earlier build: targets whose `.drv`
        path is unchanged since then are skipped.

      `additionalSteps` (optional, default: `[ ]`)
      : Buildkite steps for the build phase, after the targets.

      `postBuildSteps` (optional, default: `[ ]`)
      : Buildkite steps for the release phase.

      `phases` (optional, default: `[ "build" "release" ]`)
      : Every phase an extra step may name, in upload order.

      `activePhases` (optional, default: `phases`)
      : The phases to generate now.

      `cancelOnBuildFailing` (optional, default: `false`)
      : Sets `cancel_on_build_failing` on the target steps.

      `defaultStepOverrides` (optional, default: `{ }`)
      : Merged into every generated step.

      `treekite` (optional, default: `"treekite"`)
      : How generated steps call treekite: a command or an absolute path,
        e.g. a store path.

      `dependencies` (optional, default: `true`)
      : Whether `treekite pipeline` adds `depends_on` edges between target
        steps, found in the derivation graph.

      `maxJobsPerBuild` (optional, default: `4000`)
      : Buildkite's limit of jobs per build; above it, `treekite pipeline`
        builds targets in batches.

      `chunkSize` (optional, default: `192`)
      : The most jobs in one uploaded chunk.

    The first nine are TVL's arguments, the last four treekite's.

    # Type

    ```
    mkPipeline :: {
      headBranch :: String;
      drvTargets :: [AttrSet];
      parentTargetMap ? Drvmap;
      additionalSteps ? [Step];
      postBuildSteps ? [Step];
      phases ? [String];
      activePhases ? [String];
      cancelOnBuildFailing ? Bool;
      defaultStepOverrides ? AttrSet;
      treekite ? String;
      dependencies ? Bool;
      maxJobsPerBuild ? Int;
      chunkSize ? Int;
    } -> {
      type :: String;              # "treekite-pipeline"
      version :: Int;              # 1
      phases :: [String];          # the active phases, in order
      chunks :: { <phase> :: [[Step]]; };
      drvmap :: Drvmap;
      analysis :: {
        dependencies :: Bool;
        phases :: [String];
        settings :: Settings;
        # one per target step; skip: whether the step is skipped
        targets :: [[ key :: String, drvPath :: String, skip :: Bool, buildArgs :: String ]];
        # one per target step skipped by its metadata; kind: "broken"
        # (meta.broken) or "skip" (meta.ci.skip, whose text is the reason)
        skipped :: [[ key :: String, label :: String, kind :: String, reason :: String | Null ]];
      };
      settings :: Settings;
    }

    Drvmap = { <label> :: { drvPath :: String; attrPath :: [String]; }; }
    Settings = { dependencies :: Bool; maxJobsPerBuild :: Int; chunkSize :: Int; treekite :: String; }
    Step = AttrSet  # a Buildkite step
    ```

    `settings.treekite` is the `treekite` argument escaped for Buildkite,
    and `buildArgs` the quoted `--drv … --attr-path …` of a target:
    `treekite pipeline` writes a batch's command from them.

    # Examples
    :::{.example}
    ## `buildkite.mkPipeline` usage example

    ```nix
    buildkite.mkPipeline {
      headBranch = "main";
      drvTargets = readTree.gather (t: (t.type or null) == "derivation") depot;
    }
    => {
      type = "treekite-pipeline";
      version = 1;
      phases = [ "build" "release" ];
      chunks = {
        build = [ [
          {
            label = ":nix: tools/cheddar";
            key = "drv-8w5pib2c6z6ms8gwy722iqh0970jlick";
            command = "treekite build --drv '/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv' --attr-path '[\"tools\",\"cheddar\"]'";
            env.READTREE_TARGET = "tools/cheddar";
            skip = false;
            depends_on = [ ];
          }
          …
        ] ];
        release = [ ];
      };
      drvmap = { "tools/cheddar" = { drvPath = "/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv"; attrPath = [ "tools" "cheddar" ]; }; … };
      analysis = {
        dependencies = true;
        phases = [ "build" "release" ];
        settings = { … };
        targets = [
          [ "drv-8w5pib2c6z6ms8gwy722iqh0970jlick" "/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv" false "--drv '/nix/store/8w5pib2c6z6ms8gwy722iqh0970jlick-cheddar.drv' --attr-path '[\"tools\",\"cheddar\"]'" ]
          …
        ];
        skipped = [ ];
      };
      settings = { dependencies = true; maxJobsPerBuild = 4000; chunkSize = 192; treekite = "treekite"; };
    }
    ```

    :::
  */
  mkPipeline =
    {
      # Branch whose builds are the baseline (kept for TVL compatibility;
      # skipping is driven by `parentTargetMap`).
      headBranch
    , # Targets as gathered by readTree.gather.
      drvTargets
    , # drvmap of an earlier build: targets whose drvPath is unchanged skip.
      parentTargetMap ? { }
    , # Plain steps for the build phase, after the targets.
      additionalSteps ? [ ]
    , # Plain steps for the release phase.
      postBuildSteps ? [ ]
    , # Every phase an extra step may name, in upload order.
      phases ? [ "build" "release" ]
    , # The phases to generate now.
      activePhases ? phases
    , cancelOnBuildFailing ? false
    , # Merged into every generated step.
      defaultStepOverrides ? { }
    , # How generated steps call treekite: a command or an absolute path.
      treekite ? "treekite"
    , # Let `treekite pipeline` add `depends_on` edges between targets.
      dependencies ? true
    , # Buildkite's jobs-per-build limit; above it targets are batched.
      maxJobsPerBuild ? 4000
    , # Most jobs per uploaded chunk.
      chunkSize ? 192
    }:
    let
      enabledPhases = filter (p: elem p activePhases) phases;
      treekiteText = uploadText treekite;
      settings = { inherit dependencies maxJobsPerBuild chunkSize; treekite = treekiteText; };
      buildEnabled = elem "build" enabledPhases;

      # Targets sharing a derivation share a step; the first one leads.
      grouped = groupTargets drvTargets;

      # The shared arguments are applied once, not once per target.
      mkGroup = mkTargetGroup {
        inherit parentTargetMap cancelOnBuildFailing defaultStepOverrides treekiteText;
        mkExtras = mkExtraSteps { inherit phases buildEnabled defaultStepOverrides treekiteText; };
      };
      targetSteps = map mkGroup grouped.groups;

      # Steps per phase, each target's extra steps right after it.
      withExtras = filter (group: group.extraSteps != [ ]) targetSteps;
      stepsFor = phase:
        let
          isBuild = phase == "build";
          extrasIn = group: map (e: e.step) (filter (e: e.phase == phase) group.extraSteps);
        in
        (if !isBuild then concatMap extrasIn withExtras
        else if withExtras == [ ] then map (group: group.step) targetSteps
        else concatMap (group: [ group.step ] ++ extrasIn group) targetSteps)
        ++ (if isBuild then additionalSteps
        else if phase == "release" then postBuildSteps
        else [ ]);
    in
    {
      type = "treekite-pipeline";
      version = 1;
      phases = enabledPhases;
      chunks = listToAttrs (map (phase: { name = phase; value = chunksOf chunkSize (stepsFor phase); }) enabledPhases);
      # With one target per group, the groups are the targets in order and
      # already know their labels: the same drvmap as `mkDrvmap drvTargets`.
      drvmap =
        if grouped.oneEach then drvmapOf (filter (g: g.drvPath != null) targetSteps)
        else mkDrvmap drvTargets;
      # For `treekite pipeline`: whether to find dependencies, the phases
      # and settings again, one `[ key drvPath skip buildArgs ]` per
      # target step (lists print faster than sets), and one
      # `[ key label kind reason ]` per target step skipped by its
      # metadata, for `treekite explain` (few, and they have no drvPath).
      # Nix prints attributes in name order, so this comes first: treekite
      # reads the .drv graph while the steps are printed, and batches them
      # while the drvmap is.
      analysis = {
        inherit dependencies settings;
        phases = enabledPhases;
        targets = if !buildEnabled then [ ] else concatMap
          (g: if g.drvPath == null then [ ] else [ [ g.step.key g.drvPath (g.step.skip != false) g.buildArgs ] ])
          targetSteps;
        skipped = if !buildEnabled then [ ] else concatMap
          (g:
            if g.skipKind == "broken" then [ [ g.step.key g.label "broken" null ] ]
            else if g.skipKind == "skip" then [ [ g.step.key g.label "skip" (if isString g.ciSkip then g.ciSkip else null) ] ]
            else [ ])
          targetSteps;
      };
      inherit settings;
    };

  # Progress for `treekite pipeline`, which sets TREEKITE_PROGRESS=1: most
  # of the evaluation is spent on the targets' drvPaths, all of them before
  # the first step is printed, so the printed JSON cannot tell how far it
  # is. About every 200th of the targets, once its drvPath is evaluated,
  # traces `treekite-progress DONE/TOTAL` (on stderr). Without the variable
  # (a plain nix-instantiate, or pure evaluation) nothing is traced.
  #
  # Type: Int -> Int -> a -> a
  progress =
    if builtins.getEnv "TREEKITE_PROGRESS" == "" then total: index: value: value
    else total: index: value:
      let
        done = index + 1;
        every = total / 200 + 1;
      in
      if done - done / every * every != 0 && done != total then value
      else builtins.seq value (builtins.trace "treekite-progress ${toString done}/${toString total}" value);

  # True when a target's own metadata says not to build it; its `drvPath`
  # is then never evaluated (a broken package may throw on it).
  #
  # Type: Target -> Bool
  skippedByMeta = target:
    (target.meta.broken or false) == true
    || (let s = target.meta.ci.skip or false; in s == true || (isString s && s != ""));

  # Groups targets by derivation, in first-seen order. A target skipped by
  # its metadata stays on its own: its drvPath is never asked for.
  # `oneEach` tells that no two targets share a derivation, the usual case,
  # which needs no search for each group's leader.
  #
  # Type: [Target] -> { groups :: [{ targets :: [Target], drvPath :: String? }], oneEach :: Bool }
  groupTargets = drvTargets:
    let
      total = length drvTargets;
      entries = genList
        (index:
          let target = elemAt drvTargets index;
          in {
            inherit index target;
            drvPath = progress total index
              (if skippedByMeta target then null else unsafeDiscardStringContext target.drvPath);
          })
        total;
      idOf = e: if e.drvPath == null then "skipped-${toString e.index}" else e.drvPath;
      byId = groupBy idOf entries;
      oneEach = length (attrNames byId) == length entries;
      leaders = filter (e: (head byId.${idOf e}).index == e.index) entries;
    in
    {
      inherit oneEach;
      groups =
        if oneEach then map (e: { targets = [ e.target ]; inherit (e) drvPath; }) entries
        else map (e: { targets = map (m: m.target) byId.${idOf e}; inherit (e) drvPath; }) leaders;
    };

  # The step building one group of targets (all the same derivation), and
  # the group's extra steps (from `mkExtras`).
  mkTargetGroup = { parentTargetMap, cancelOnBuildFailing, defaultStepOverrides, treekiteText, mkExtras }:
    let
      buildLine = treekiteCommand treekiteText "build";
      noParentMap = parentTargetMap == { };
      cancel = if cancelOnBuildFailing then { cancel_on_build_failing = true; } else { };
    in
    group:
    let
      inherit (group) drvPath;
      target = head group.targets;
      single = length group.targets == 1;
      label = readTree.mkLabel target;
      labels = if single then [ label ] else map readTree.mkLabel group.targets;
      # The label holds every character of the attribute path's names, so
      # when it has neither `'` nor `$`, neither has the path as JSON: one
      # look at the label spares escaping both.
      plain = isPlain label;
      labelText = if plain then label else uploadText label;
      attrPath = targetAttrPath target;
      meta = target.meta or { };
      ci = meta.ci or { };
      unchanged = !noParentMap && drvPath != null
        && builtins.any (l: (parentTargetMap.${l}.drvPath or null) == drvPath) labels;
      ciSkip = ci.skip or false;
      # Why the step is skipped, for `analysis`: "broken", "skip"
      # (meta.ci.skip), "unchanged", or null when it runs.
      skipKind =
        if (meta.broken or false) == true then "broken"
        else if ciSkip != false then "skip"
        else if unchanged then "unchanged"
        else null;
      skip =
        if skipKind == null then false
        else if skipKind == "broken" then "Target is marked broken."
        else if skipKind == "skip" then skipReason "Target is marked meta.ci.skip." ciSkip
        else "Target has not changed.";
      attrPathJSON = toJSON attrPath;
      # `drvFlags target.drvPath drvPath plain attrPathJSON`, written out:
      # on every target the calls (with `quoteWord`'s) cost about 1,450
      # instructions, 1 % of mkPipeline's work (callgrind, 2,000 targets).
      buildArgs = "--drv " + drvArg target.drvPath drvPath
        + " --attr-path " + (if plain then "'" + attrPathJSON + "'" else shellArg attrPathJSON);
      timeout = meta.timeout or null;
      self = {
        inherit drvPath target label plain labelText buildArgs attrPath attrPathJSON skip skipKind ciSkip;
        step = {
          label = ":nix: " + (if single then labelText else uploadText (concatStringsSep ", " labels));
          key =
            if drvPath == null then "skipped-" + substring 0 32 (hashString "sha256" attrPathJSON)
            else drvKey drvPath;
          command =
            if drvPath == null then "echo ${shellArg "${label} is not built: ${skip}"}"
            else buildLine buildArgs;
          env.READTREE_TARGET = labelText;
          inherit skip;
          depends_on = ci.buildkiteExtraDeps or [ ];
        }
        // cancel
        // (if timeout == null then { } else { timeout_in_minutes = let m = (timeout + 59) / 60; in if m < 1 then 1 else m; })
        // defaultStepOverrides
        // (ci.buildkiteExtraStepArgs or { });
        extraSteps = mkExtras self;
      };
    in
    self;

  # The extra steps of a target group, from `meta.ci.extraSteps`, each with
  # the phase it belongs to. What all extra steps share is put together
  # once.
  mkExtraSteps = { phases, buildEnabled, defaultStepOverrides, treekiteText }:
    let
      shared = {
        inherit phases buildEnabled defaultStepOverrides;
        buildLine = treekiteCommand treekiteText "build";
        execLine = treekiteCommand treekiteText "exec";
      };
    in
    parent:
    let extraSteps = parent.target.meta.ci.extraSteps or { };
    in if extraSteps == { } then [ ]
    else map (name: mkExtraStep shared parent name extraSteps.${name}) (attrNames extraSteps);

  # One extra step, `{ phase, step }`. It reuses what the parent's step
  # already computed (its build arguments, attribute path as JSON, label
  # text) rather than quoting it again.
  #
  # Its pieces are functions below. That costs about 27 function calls
  # (10,000 instructions) per extra step, 5 % of one, most of which is its
  # script's derivation: about 4 ms at 10,000 targets, too little to see
  # in wall time. (A target's step, made for every target, keeps its
  # `buildArgs` written out.)
  mkExtraStep = shared: parent: name:
    { command
    , label ? name
    , needsOutput ? false
    , parentOverride ? null
    , branches ? null
    , alwaysRun ? false
    , prompt ? false
    , softFail ? false
    , phase ? "build"
    , skip ? false
    , agents ? null
    }:
    let
      where = "extra step '${name}' of ${parent.label}";
      script = checkScript where command;
      # `treekite explain` knows extra steps by this prefix
      # (EXTRA_STEP_KEY_PREFIX in src/pipeline/model.rs).
      key = "extra-step-" + hashString "sha1" (toJSON [ parent.step.key name ]);
      # uploadText "${label} (from ${parent.label})": " (from " holds no
      # `\` or `$`, so each side can be escaped alone.
      stepLabel = "${uploadText label} (from ${parent.labelText})";
      branchesField = if branches == null then { } else { branches = concatStringsSep " " branches; };

      step = {
        inherit key;
        label = ":gear: " + stepLabel;
        command = extraStepCommand shared parent name { inherit label script needsOutput parentOverride; };
        skip = extraStepSkip parent skip alwaysRun;
        depends_on = if shared.buildEnabled && parentOverride == null then [ parent.step.key ] else [ ];
      }
      // (if softFail != false then { soft_fail = softFail; } else { })
      // shared.defaultStepOverrides
      // (if agents == null then { } else { inherit agents; })
      // branchesField;
    in
    {
      phase = checkPhase where shared.phases prompt phase;
      step = builtins.seq script (
        if !(isString prompt) then step
        else gated step {
          inherit prompt branchesField;
          group = stepLabel;
          block = ":radio_button: Run " + uploadText "${label}? (from ${parent.label})";
        });
    };

  # An extra step's phase: one of the pipeline's, and not the build phase
  # for a step that waits for a person.
  checkPhase = where: phases: prompt: phase:
    if !(elem phase phases) then throw "${where}: phase '${phase}' is not one of the pipeline's phases (${concatStringsSep ", " phases}); add it to mkPipeline's `phases` or fix the step"
    else if prompt != false && phase == "build" then throw "${where}: a step with `prompt` waits for a person, so it cannot be in the build phase; give it `phase = \"release\"`"
    else phase;

  # An extra step's script, which must be a derivation.
  checkScript = where: command:
    if isDerivation command then command
    else throw "${where}: `command` must be a derivation (e.g. a script made with writeShellScript), got a ${builtins.typeOf command}";

  # What an extra step runs: `treekite exec` of its script, after building
  # its parent's output into ./result when it `needsOutput`.
  extraStepCommand = shared: parent: name: { label, script, needsOutput, parentOverride }:
    let
      runScript = shared.execLine (scriptArgs parent name script);
      # Which parent to build: an override makes a different derivation,
      # which its attribute path cannot re-create.
      outputParent = if parentOverride == null then null else parentOverride parent.target;
      parentArgs =
        if outputParent == null then parent.buildArgs
        else drvFlags outputParent.drvPath (unsafeDiscardStringContext outputParent.drvPath) false null;
    in
    if !needsOutput then runScript
    # A parent skipped by its metadata has no derivation to build: the
    # step (skipped unless `alwaysRun`) says so if it ever runs.
    else if outputParent == null && parent.drvPath == null then
      "echo ${shellArg "${label} needs the output of ${parent.label}, which is not built: ${parent.skip}"} >&2; exit 1"
    else shared.buildLine (parentArgs + resultLinkFlag) + " && " + runScript;

  # `treekite exec`'s arguments for an extra step's script: its `.drv`, and
  # its attribute path,
  # toJSON (parent.attrPath ++ [ "meta" "ci" "extraSteps" name "command" ]),
  # made from the parent's own JSON.
  scriptArgs = parent: name: script:
    let
      attrPathJSON =
        if parent.attrPath == [ ] then toJSON [ "meta" "ci" "extraSteps" name "command" ]
        else "${substring 0 (stringLength parent.attrPathJSON - 1) parent.attrPathJSON},\"meta\",\"ci\",\"extraSteps\",${toJSON name},\"command\"]";
    in
    drvFlags script.drvPath (unsafeDiscardStringContext script.drvPath) (parent.plain && isPlain name) attrPathJSON;

  # An extra step's `skip`: its own, else none if it must always run, else
  # its parent's (the text `treekite explain` looks for: PARENT_SKIPPED in
  # src/pipeline/model.rs).
  extraStepSkip = parent: skip: alwaysRun:
    if skip != false then skipReason "Extra step is marked skip." skip
    else if alwaysRun then false
    else if parent.step.skip != false then "Parent target is skipped."
    else false;

  # A step behind a prompt: a group of its own holding a block step, which
  # asks, and the step, which waits for it. The group takes the step's
  # `depends_on` and `skip`.
  gated = step: { group, block, prompt, branchesField }:
    {
      inherit group;
      key = step.key + "-group";
      inherit (step) depends_on skip;
      steps = [
        ({ inherit block; key = step.key + "-block"; prompt = uploadText prompt; } // branchesField)
        ((removeAttrs step [ "depends_on" "skip" ]) // { depends_on = [ (step.key + "-block") ]; })
      ];
    };
in
{
  inherit keyForDrv mkBuildCommand mkDrvmap mkPipeline;
}
