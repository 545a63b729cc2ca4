
# --- ltigrade's grading service (written by `ltigrade hub install --service`) ---
# The hub starts `ltigrade serve` as a managed service under
# /services/<name>/, and every user gets the scope to reach it (browser
# login and API tokens); what each may do there, ltigrade decides
# ([service] graders in its config). Services and roles configured
# elsewhere are kept: ours are appended.
LTIGRADE_SERVICE_NAME = "ltigrade"
LTIGRADE_SERVICE_URL = "http://127.0.0.1:10101"


def _ltigrade_add_service(c):
    name = LTIGRADE_SERVICE_NAME
    access = "access:services!service=" + name
    configs = _ltigrade_configs(c)
    already = any(
        isinstance(s, dict) and s.get("name") == name
        for cfg in configs
        for s in _ltigrade_list(cfg, "JupyterHub", "services")
    )
    if not already:
        # append (a lazy traitlets operation): merged into whatever
        # services list the other config files set, before or after.
        c.JupyterHub.services.append({  # noqa: F821
            "name": name,
            "url": LTIGRADE_SERVICE_URL,
            "command": [LTIGRADE, *LTIGRADE_ARGS, "serve"],
            "oauth_no_confirm": True,
            "display": True,
        })
    # Every user may reach the service: the 'user' role (their API tokens and
    # browser logins) and the 'server' role, whose scopes a user's server
    # gets in its JUPYTERHUB_API_TOKEN (the remote CLI's token in there;
    # JupyterHub gives a server only 'users:activity!user' and
    # 'access:servers!server' by default).
    _ltigrade_extend_role(c, configs, "user", ["self"], access)
    _ltigrade_extend_role(c, configs, "server", ["users:activity!user", "access:servers!server"], access)


def _ltigrade_extend_role(c, configs, name, default_scopes, scope):
    """Add scope to role name where it is already defined (JupyterHub
    refuses a role defined twice), else define it with JupyterHub's default
    scopes for it plus scope (an override replaces the default scopes)."""
    for cfg in configs:
        for role in _ltigrade_list(cfg, "JupyterHub", "load_roles"):
            if isinstance(role, dict) and role.get("name") == name:
                scopes = role.setdefault("scopes", list(default_scopes))
                if scope not in scopes:
                    scopes.append(scope)
                return
    c.JupyterHub.load_roles.append({"name": name, "scopes": [*default_scopes, scope]})  # noqa: F821


def _ltigrade_list(cfg, section, key):
    """A list already set in a config (a plain list or a lazy append)."""
    sec = cfg.get(section) if hasattr(cfg, "get") else None
    if not hasattr(sec, "get"):
        return []
    value = sec.get(key)
    if isinstance(value, list):
        return value
    extend = getattr(value, "_extend", None)  # traitlets LazyConfigValue
    return extend if isinstance(extend, list) else []


_ltigrade_add_service(c)  # noqa: F821
