-- Upper bound for `make bench`: a Lua passdb that accepts every login without any I/O. It runs
-- with the same settings as the bridge (blocking=yes, so in auth-worker processes), so its rate
-- is what Dovecot's auth process and workers allow on this machine.

function script_init()
  return 0
end

function script_deinit()
end

function auth_password_verify(req, password)
  return dovecot.auth.PASSDB_RESULT_OK, {}
end
