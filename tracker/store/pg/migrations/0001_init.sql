-- pixelrelay's tracker store on PostgreSQL, version 1. Times are
-- timestamptz (microseconds); a copy's counters are historical totals as
-- in the bbolt engine (purge does not lower them).

CREATE TABLE copies (
	key               text PRIMARY KEY,          -- tracking id, or QUEUEID/rcpt when untracked
	tracking_id       text NOT NULL DEFAULT '',
	queue_id          text NOT NULL DEFAULT '',
	recipient         text NOT NULL DEFAULT '',
	rcpt              text NOT NULL DEFAULT '',  -- recipient lowercased, without <>
	sender            text NOT NULL DEFAULT '',
	subject           text NOT NULL DEFAULT '',
	message_id        text NOT NULL DEFAULT '',
	queued_at         timestamptz NOT NULL,
	sent_at           timestamptz,
	done_at           timestamptz,               -- sent or failed: purge may delete it after
	status            text NOT NULL,
	last_error        text NOT NULL DEFAULT '',
	untracked_reason  text NOT NULL DEFAULT '',
	account           text NOT NULL DEFAULT '',  -- the upstream account ('' before accounts)
	links_key         text NOT NULL DEFAULT '',  -- links.owner of its link URLs ('' none)
	opens_total       integer NOT NULL DEFAULT 0,
	opens_human       integer NOT NULL DEFAULT 0,
	first_human_open  timestamptz,
	clicks_total      integer NOT NULL DEFAULT 0,
	clicks_human      integer NOT NULL DEFAULT 0,
	first_human_click timestamptz
);
CREATE INDEX copies_queued ON copies (queued_at DESC, key DESC);
CREATE INDEX copies_rcpt ON copies (rcpt, queued_at DESC);
CREATE INDEX copies_unopened ON copies (queued_at DESC, key DESC)
	WHERE untracked_reason = '' AND first_human_open IS NULL;
CREATE INDEX copies_done ON copies (done_at) WHERE done_at IS NOT NULL;
CREATE INDEX copies_links ON copies (links_key) WHERE links_key <> '';

-- Link URLs of a message's tracked copies, kept once under its queue id
-- (or a copy's tracking id when it has none).
CREATE TABLE links (
	owner text NOT NULL,
	n     integer NOT NULL,
	url   text NOT NULL,
	PRIMARY KEY (owner, n)
);

CREATE TABLE opens (
	seq        bigserial PRIMARY KEY,
	copy       text NOT NULL REFERENCES copies (key) ON DELETE CASCADE,
	at         timestamptz NOT NULL,
	ip         text NOT NULL DEFAULT '',
	user_agent text NOT NULL DEFAULT '',
	bot        boolean NOT NULL DEFAULT false,
	bot_type   text NOT NULL DEFAULT '',
	proxy      text NOT NULL DEFAULT '',
	reason     text NOT NULL DEFAULT '',
	country    text NOT NULL DEFAULT '',
	city       text NOT NULL DEFAULT '',
	first      boolean NOT NULL DEFAULT false,
	by_click   boolean NOT NULL DEFAULT false
);
CREATE INDEX opens_copy ON opens (copy, at);
CREATE INDEX opens_at ON opens (at);
CREATE INDEX opens_ip ON opens (ip, at);

CREATE TABLE clicks (
	seq        bigserial PRIMARY KEY,
	copy       text NOT NULL REFERENCES copies (key) ON DELETE CASCADE,
	link       integer NOT NULL,
	at         timestamptz NOT NULL,
	ip         text NOT NULL DEFAULT '',
	user_agent text NOT NULL DEFAULT '',
	bot        boolean NOT NULL DEFAULT false,
	ruled      boolean NOT NULL DEFAULT false, -- a click rule made a human fetch a machine's
	bot_type   text NOT NULL DEFAULT '',
	reason     text NOT NULL DEFAULT '',
	base_bot   boolean NOT NULL DEFAULT false, -- the open rules' verdict
	base_type  text NOT NULL DEFAULT '',
	base_reason text NOT NULL DEFAULT '',
	country    text NOT NULL DEFAULT '',
	city       text NOT NULL DEFAULT '',
	first      boolean NOT NULL DEFAULT false,
	settled    boolean NOT NULL DEFAULT false
);
CREATE INDEX clicks_copy ON clicks (copy, at);
CREATE INDEX clicks_at ON clicks (at);
CREATE INDEX clicks_ip ON clicks (ip, at);
CREATE INDEX clicks_pending ON clicks (at) WHERE NOT settled;

-- Dedup: the last stored open (link -1) or click of a copy from one
-- client. Its unique key makes the same fetch at several processes one.
CREATE TABLE dedup (
	copy       text NOT NULL,
	link       integer NOT NULL,
	ip         text NOT NULL,
	user_agent text NOT NULL,
	last_at    timestamptz NOT NULL,
	PRIMARY KEY (copy, link, ip, user_agent)
);
CREATE INDEX dedup_last ON dedup (last_at);

-- The per-IP hourly limit: fetches stored per IP and minute.
CREATE TABLE ip_minutes (
	ip     text NOT NULL,
	minute timestamptz NOT NULL,
	n      integer NOT NULL,
	PRIMARY KEY (ip, minute)
);
CREATE INDEX ip_minutes_minute ON ip_minutes (minute);

CREATE TABLE copy_events (
	seq    bigserial PRIMARY KEY,
	copy   text NOT NULL REFERENCES copies (key) ON DELETE CASCADE,
	at     timestamptz NOT NULL,
	status text NOT NULL,
	error  text NOT NULL DEFAULT ''
);
CREATE INDEX copy_events_copy ON copy_events (copy, at);

-- Hourly counts for the dashboard (historical: purge keeps them).
CREATE TABLE activity (
	hour           timestamptz PRIMARY KEY,
	opens_human    integer NOT NULL DEFAULT 0,
	opens_machine  integer NOT NULL DEFAULT 0,
	clicks_human   integer NOT NULL DEFAULT 0,
	clicks_machine integer NOT NULL DEFAULT 0,
	queued         integer NOT NULL DEFAULT 0,
	sent           integer NOT NULL DEFAULT 0,
	first_human    integer NOT NULL DEFAULT 0
);

CREATE TABLE webhook_outbox (
	seq      bigserial PRIMARY KEY,
	endpoint text NOT NULL,
	event_id text NOT NULL,
	type     text NOT NULL,
	created  timestamptz NOT NULL,
	body     bytea NOT NULL
);
CREATE INDEX webhook_outbox_endpoint ON webhook_outbox (endpoint, seq);

CREATE TABLE webhook_state (
	endpoint text PRIMARY KEY,
	state    jsonb NOT NULL
);
