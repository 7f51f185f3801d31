# readTree: lays a folder tree out as one attribute set, one attribute per
# folder or file, so that a monorepo ("depot") needs no hand-written index.
#
# Needs nothing but `builtins`, because a depot calls it before it has
# nixpkgs. It reads folders and imports files; it never builds anything.
# The rules it follows are in the documentation of `__functor` (calling
# the library), at the end of this file.
#
# Names are only ever used as data (attribute names, path segments): no Nix
# source is built from them, so any name the file system allows works.
{ ... }:

let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    head
    isAttrs
    isFunction
    listToAttrs
    match
    readDir
    substring
    typeOf
    ;

  isDerivation = x: isAttrs x && (x.type or null) == "derivation";

  isHidden = name: substring 0 1 name == ".";

  label = parts: "//" + concatStringsSep "/" parts;

  marker = parts: childNames: {
    __readTree = parts;
    __readTreeChildren = childNames;
  };

  # A derivation built by nixpkgs must keep its identity (and its override
  # functions), so extra attributes go through `passthru`; `//` would give a
  # set whose overrides forget them. A plain `derivation` keeps its drvPath
  # either way.
  merge = node: extra:
    if node ? overrideAttrs
    then node.overrideAttrs (old: { passthru = (old.passthru or { }) // extra; })
    else node // extra;

  # `args` may depend on the location, so it can be a function; `locatedAt`
  # is added last so that it always tells the truth.
  argsAt = args: parts:
    let located = { locatedAt = parts; };
    in (if isAttrs args then args else args located) // located;

  callFile = cfg: file: parts:
    let
      imported =
        if cfg.scopedArgs == { } then import file
        else if builtins ? scopedImport then builtins.scopedImport cfg.scopedArgs file
        else throw "readTree: scopedArgs were given, but this Nix has no builtins.scopedImport; drop scopedArgs to read ${toString file}";
    in
    if isFunction imported
    then imported (cfg.filter parts (argsAt cfg.args parts))
    else throw "readTree: ${toString file} evaluates to a ${typeOf imported}, but readTree calls every file it imports with the depot's arguments; make it a function, e.g. `{ depot, pkgs, ... }: …`";

  # The `{ name, value }` pair a `<name>.nix` file contributes to its folder.
  fileChild = cfg: dir: parts: name:
    let
      childParts = parts ++ [ name ];
      value = callFile cfg (dir + "/${name}.nix") childParts;
    in
    {
      inherit name;
      value = if isAttrs value then merge value (marker childParts [ ]) else value;
    };

  # The pairs a sub-folder contributes: none when it has `.skip-tree`.
  # Reading it here (not lazily) is what lets the parent know its own names.
  folderChild = cfg: dir: parts: name:
    let
      path = dir + "/${name}";
      entries = readDir path;
    in
    if entries ? ".skip-tree" then [ ]
    else [{ inherit name; value = readFolder cfg path (parts ++ [ name ]) entries false; }];

  readFolder = cfg: dir: parts: entries: isRoot:
    let
      hasDefault = entries ? "default.nix";
      descend = !(entries ? ".skip-subtree");
      visible = filter (n: !isHidden n) (attrNames entries);

      nixFileName = n:
        let m = match "(.+)\\.nix" n;
        in if m == null || entries.${n} == "directory" then [ ] else m;
      fileNames = if descend && !hasDefault then concatMap nixFileName visible else [ ];
      folderNames = if descend then filter (n: entries.${n} == "directory") visible else [ ];

      folders = concatMap (folderChild cfg dir parts) folderNames;
      folderSet = listToAttrs folders;
      clashes = filter (n: folderSet ? ${n}) fileNames;
      clash = head clashes;

      # TVL silently lets the file win; two sources for one attribute is
      # almost always a mistake, so say so.
      children =
        if clashes == [ ] then listToAttrs (map (fileChild cfg dir parts) fileNames ++ folders)
        else throw "readTree: ${toString dir}/${clash}.nix and the folder ${toString dir}/${clash}/ both define ${label (parts ++ [ clash ])}; rename one of them (or put a .skip-tree file in the folder if it holds no Nix code)";

      self = if hasDefault && !isRoot then callFile cfg (dir + "/default.nix") parts else { };
    in
    if isAttrs self
    then merge self (children // marker parts (attrNames children))
    else self;

  # A node's subtarget, marked so that it can be told from the node itself.
  subtarget = node: name:
    let value = node.${name} or (throw "readTree: ${label node.__readTree} lists `${name}` in meta.ci.targets, but has no attribute of that name; remove it from the list or add the attribute");
    in
    if isAttrs value
    then value // { __readTree = node.__readTree; __readTreeChildren = [ ]; __subtarget = name; }
    else throw "readTree: subtarget `${name}` of ${label node.__readTree} is a ${typeOf value}; meta.ci.targets must name attribute sets (usually derivations)";

  /**
    The eligible targets at and below a node, depth-first: the node, then
    the trees of its readTree children (in `__readTreeChildren` order), then
    its subtargets from `meta.ci.targets`. Values readTree did not produce
    (no `__readTree`) are not looked into.

    A subtarget is its node's attribute with `__readTree` (the node's
    location), an empty `__readTreeChildren` and `__subtarget` (its name)
    added. Subtargets must be attribute sets; `eligible` decides whether
    they are gathered like any other node.

    # Inputs

    `eligible`

    : 1\. Whether a node (or subtarget) is a target, e.g. whether it is a
      derivation.

    `node`

    : 2\. A value produced by readTree: the whole depot, or a part of it.

    # Type

    ```
    gather :: (AttrSet -> Bool) -> AttrSet -> [AttrSet]
    ```

    # Examples
    :::{.example}
    ## `readTree.gather` usage example

    ```nix
    # //tools/cheddar and //web/site are derivations; //web/site has
    # meta.ci.targets = [ "css" ].
    map readTree.mkLabel
      (readTree.gather (t: (t.type or null) == "derivation") depot)
    => [ "tools/cheddar" "web/site" "web/site:css" ]
    ```

    :::
  */
  gather = eligible: node:
    if node ? __readTree then
      (if eligible node then [ node ] else [ ])
      ++ concatMap (name: gather eligible node.${name}) node.__readTreeChildren
      ++ filter eligible (map (subtarget node) (node.meta.ci.targets or [ ]))
    else [ ];

  /**
    A target's name for humans: its location joined with `/`, followed by
    `:<name>` for a subtarget. It is also the target's key in a drvmap.

    # Inputs

    `target`

    : 1\. A node or subtarget from `gather` (it has `__readTree`).

    # Type

    ```
    mkLabel :: AttrSet -> String
    ```

    # Examples
    :::{.example}
    ## `readTree.mkLabel` usage example

    ```nix
    readTree.mkLabel { __readTree = [ "tools" "cheddar" ]; }
    => "tools/cheddar"
    readTree.mkLabel { __readTree = [ "web" "site" ]; __subtarget = "css"; }
    => "web/site:css"
    ```

    :::
  */
  mkLabel = target:
    concatStringsSep "/" target.__readTree
    + (if target ? __subtarget then ":${target.__subtarget}" else "");

  /**
    Makes every direct child that is a derivation a subtarget, so that a
    node grouping several packages gets them all built. The rest of `meta`
    and `meta.ci` is kept; `meta.ci.targets` is replaced.

    # Inputs

    `attrs`

    : 1\. The node's attribute set, usually what its `default.nix` returns.

    # Type

    ```
    drvTargets :: AttrSet -> AttrSet
    ```

    # Examples
    :::{.example}
    ## `readTree.drvTargets` usage example

    ```nix
    # third_party/tools/default.nix
    { pkgs, ... }:
    readTree.drvTargets {
      inherit (pkgs) git jq;
      version = "1";
    }
    => { git = «derivation»; jq = «derivation»; version = "1";
         meta.ci.targets = [ "git" "jq" ]; }
    ```

    :::
  */
  drvTargets = attrs:
    attrs // {
      meta = (attrs.meta or { }) // {
        ci = (attrs.meta.ci or { }) // {
          targets = filter (name: isDerivation attrs.${name}) (attrNames attrs);
        };
      };
    };

  /**
    The fixed point of `f`, for a depot whose `args` contain the depot
    itself, before nixpkgs' `lib.fix` is available.

    # Inputs

    `f`

    : 1\. A function whose argument is its own result.

    # Type

    ```
    fix :: (a -> a) -> a
    ```

    # Examples
    :::{.example}
    ## `readTree.fix` usage example

    ```nix
    readTree.fix (self: { a = 1; b = self.a + 1; })
    => { a = 1; b = 2; }
    depot = readTree.fix (self: readTree { path = ./.; args = { depot = self; }; })
    ```

    :::
  */
  fix = f: let x = f x; in x;

  /**
    A `filter` for readTree that keeps code outside the top-level `folder`
    from using `depot.<folder>`: there it throws, quoting `reason`. Code in
    `folder` and at the exact locations in `exceptions` sees it as usual.
    It expects `args.depot` to be an attribute set.

    # Inputs

    Structured function argument

    : `folder`
      : The name of a top-level folder, e.g. `"experimental"`.

      `exceptions` (optional, default: `[ ]`)
      : Locations outside `folder` that may use it anyway, each a list of
        names, e.g. `[ [ "services" "app" ] ]`.

      `reason`
      : Why the folder is restricted, shown in the error.

    `parts`

    : 2\. The location of the file being imported (given by readTree).

    `args`

    : 3\. The arguments it would get (given by readTree).

    # Type

    ```
    restrictFolder :: { folder :: String; exceptions ? [[String]]; reason :: String; }
                   -> [String] -> AttrSet -> AttrSet
    ```

    # Examples
    :::{.example}
    ## `readTree.restrictFolder` usage example

    ```nix
    readTree.fix (self: readTree {
      path = ./.;
      args = { depot = self; };
      filter = readTree.restrictFolder {
        folder = "experimental";
        exceptions = [ [ "services" "app" ] ];
        reason = "experimental code may change at any time";
      };
    })
    # In //web/site, `depot.experimental` now throws: "readTree: //web/site
    # may not use depot.experimental: experimental code may change at any
    # time (…)"; in //experimental/… and //services/app it works as usual.
    ```

    :::
  */
  restrictFolder = { folder, exceptions ? [ ], reason }: parts: args:
    if (parts != [ ] && head parts == folder) || elem parts exceptions
    then args
    else args // {
      depot = args.depot // {
        ${folder} = throw "readTree: ${label parts} may not use depot.${folder}: ${reason} (only code under //${folder} and the exceptions given to restrictFolder may use it)";
      };
    };
in
{
  /**
    The tree below `path`, as one attribute set. The rules follow TVL's
    readTree:

    - The folder given as `path` is the root; its own `default.nix` is not
      imported (it is usually the file calling readTree), unless `rootDir`
      is `false`.
    - A sub-folder becomes an attribute named after it. If it has a
      `default.nix`, that is the node's value; if not, each of its other
      `*.nix` files becomes an attribute named without `.nix`. Sub-folders
      are read recursively and merged into the node. The root follows the
      same rule, so a root with a `default.nix` contributes only its
      folders. A file and a folder giving the same name are an error.
    - Every imported file is a function, called with `args` plus
      `locatedAt` (its location).
    - `.skip-tree` removes its folder; `.skip-subtree` keeps the folder's
      `default.nix` but reads nothing below it. Other hidden entries are
      ignored.
    - An attribute-set node carries `__readTree` (its location, a list of
      names) and `__readTreeChildren` (the names readTree added to it).
      Any other value (a string, a list…) is the node, and nothing is
      merged in. A derivation made by nixpkgs gets these through
      `passthru`, so it keeps its override functions.

    # Inputs

    Structured function argument

    : `path`
      : The root folder of the tree.

      `args`
      : The arguments of every imported file, or a function from
        `{ locatedAt }` to them.

      `filter` (optional, default: `parts: args: args`)
      : Sees each file's location and arguments, and may change the
        arguments (see `restrictFolder`).

      `scopedArgs` (optional, default: `{ }`)
      : When not empty, in scope in every imported file (through
        `builtins.scopedImport`).

      `rootDir` (optional, default: `true`)
      : `false` imports the root's own `default.nix` as well (kept for TVL
        compatibility).

      `prefix` (optional, default: `[ ]`)
      : A treekite addition: where `path` sits in a larger depot, so that a
        repository can read only its Nix folders and never walk the others
        (build output, sources). Locations then start with `prefix`.

    # Type

    ```
    readTree :: {
      path :: Path;
      args :: AttrSet | ({ locatedAt :: [String]; } -> AttrSet);
      filter ? [String] -> AttrSet -> AttrSet;
      scopedArgs ? AttrSet;
      rootDir ? Bool;
      prefix ? [String];
    } -> AttrSet
    ```

    # Examples
    :::{.example}
    ## `readTree` usage example

    ```nix
    # default.nix of a depot holding tools/cheddar/default.nix and
    # web/site.nix
    let
      readTree = import ./third_party/treekite/nix/readTree { };
    in
    readTree.fix (self: readTree {
      path = ./.;
      args = { depot = self; };
    })
    => { tools = { cheddar = …; __readTree = [ "tools" ]; … };
         web = { site = …; __readTree = [ "web" ]; … };
         __readTree = [ ]; __readTreeChildren = [ "tools" "web" ]; }
    ```

    :::
  */
  __functor = _:
    { path
    , args
    , filter ? (parts: args: args)
    , scopedArgs ? { }
    , rootDir ? true
    , prefix ? [ ]
    }:
    let entries = readDir path;
    in
    if entries ? ".skip-tree"
    then throw "readTree: ${toString path} is the root of the tree but has a .skip-tree file, so there is nothing to read; remove it (use .skip-tree only in sub-folders)"
    else readFolder { inherit args filter scopedArgs; } path prefix entries rootDir;

  inherit gather mkLabel drvTargets fix restrictFolder;
}
