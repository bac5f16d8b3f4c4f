-- Where and in which language a person is told things: the e-mail address notifications are mailed
-- to (when SMTP is configured) and their preferred locale (`en`, `zh-CN`; none: both languages).
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN locale TEXT;
