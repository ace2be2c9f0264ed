"""The container runtime: OCI runtime specs and the code that runs them.

Two implementations of one interface (``dockyard.runtime.base.Runtime``, a ``typing.Protocol``):

* ``builtin.BuiltinRuntime(root=Path("/run/dockyard/runtime"))`` -- Dockyard's own OCI runtime
  (runtime-spec 1.1, Linux), in-process: ``os.fork`` and ctypes, no interpreter re-exec.  Also
  available as the runc-compatible command ``dockyard-runtime`` (``cli.py``, state in
  ``/run/dockyard-runtime`` by default).
* ``external.ExternalRuntime("runc", root=...)`` -- the same calls made by running runc/crun.

The contract (runc's lifecycle, per the runtime spec)::

    create(id, bundle, *, stdio=None, console_socket=None, pid_file=None, no_pivot=False) -> int
        Set up the container from <bundle>/config.json and leave its init blocked until ``start``.
        Returns the init's host pid.  The init is NOT a child of the caller: it is re-parented to
        the caller's nearest child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), which must reap it
        to learn the exit status.  ``stdio`` gives the container's fds 0/1/2 (default: the caller's);
        ``console_socket`` is required when process.terminal is set: the pty master is sent over it
        with SCM_RIGHTS exactly as runc does.  Setup errors are raised here: ``CommandNotFound``
        (127, 'exec: "foo": executable file not found in $PATH'), ``CommandNotExecutable`` (126),
        ``RuntimeFailure`` (125; bad cwd, mount failure, hook failure, ...), ``Conflict`` for a
        duplicate id, ``InvalidArgument`` for a malformed config.  A failed create leaves nothing.
    start(id)                      created -> running; raises if the exec failed.  Conflict otherwise.
    state(id) -> OCIState          oci_version, id, status, pid, bundle, annotations (+ rootfs, created,
                                   owner).  status: creating | created | running | paused | stopped.
    kill(id, sig="SIGTERM", *, all=False)
                                   created/running/paused only; sig as int, "TERM", "SIGTERM" or "15".
                                   all=True signals every process of the cgroup (frozen meanwhile).
    delete(id, *, force=False)     stopped only, unless force (then SIGKILL first).  Removes the cgroup,
                                   runs poststop hooks, forgets the container.
    exec(id, process, *, stdio=None, console_socket=None, pid_file=None, detach=True) -> int
                                   Runs an OCI ``process`` object in all of the container's namespaces
                                   and its cgroup, under its seccomp profile.  detach=True: returns the
                                   pid (re-parented like the init).  detach=False: waits and returns the
                                   exit status (128+N for signal N).
    pause(id) / resume(id)         cgroup freezer (v1 freezer.state, v2 cgroup.freeze).
    list() -> list[OCIState]

``BuiltinRuntime.cgroup(id)`` gives the container's ``cgroups.Cgroup`` (``oom_kills()``, ``pids()``).
``ContainerNotFound`` is raised for unknown ids everywhere.

Modules: ``linux`` (syscalls via ctypes), ``rootfs`` (mounts, devices, pivot_root), ``process``
(user, capabilities, rlimits, console, exec), ``cgroups`` (v1 and v2), ``seccomp`` (libseccomp via
ctypes), ``hooks``, ``state`` (state.json and status derivation), ``spec`` (image config + run options
-> config.json; not part of the runtime).
"""
