"""Porting layers: the spelling of the systems ipsmtp replaces, over the same component.

* `ipsmtp.compat.ipworks`: the IPWorks SMTP Python edition (``get_``/``set_`` accessors,
  ``on_<event>`` handlers, `IPWorksError`).
* `ipsmtp.compat.netsmtp`: InterSystems %Net.SMTP, %Net.MailMessage and %Net.Authenticator.
* `ipsmtp.compat.xsk`: SAP XSK's ``$.net.Mail``, ``Mail.Part`` and ``$.net.SMTPConnection``.
* `ipsmtp.compat.nodemailer`: Nodemailer's smtp-connection (options, envelope, info object).
* `ipsmtp.compat.infinity`: infinity.smtp, its client and its server with per-command handlers.

Each is a thin layer: the work is done by `ipsmtp.SMTP`, so the porting layers get every
feature and fix of the component.
"""
