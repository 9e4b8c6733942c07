"""Pod networking as a CNI runtime: pyrkt runs the real CNI plugins (Debian's, /usr/lib/cni).

- ``config``: the built-in networks (rkt's ``default`` and ``default-restricted``) and the
  user's ``net.d/*.conf|*.conflist``, overriding built-ins by name, in lexicographic order
- ``netns``: a pod's network namespace as a bind-mounted file (made before any plugin runs)
- ``cni``: running plugins with the CNI contract (env, stdin, results, errors)
- ``setup``: up (``create_netns``, then ``add``) and ``down`` for a pod: every step's state is written to the pod dir
  *before* the next step, so ``down`` (DEL in reverse order, then the netns) can always finish
  after a crash, and is idempotent

``--net=host`` and ``--net=none`` are handled by stage1 itself and never reach here.
"""
