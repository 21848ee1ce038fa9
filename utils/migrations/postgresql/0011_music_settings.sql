-- Music: each server's own choices (autoplay, 24/7 and its channels, the DJ role).
CREATE TABLE music_settings (
    guild_id             BIGINT PRIMARY KEY,
    autoplay             BIGINT NOT NULL DEFAULT 0,
    stay                 BIGINT NOT NULL DEFAULT 0, -- 24/7: never leave when idle or alone
    stay_channel_id      BIGINT,                    -- the voice channel 24/7 stays in
    stay_text_channel_id BIGINT,                    -- where it announces tracks there
    dj_role_id           BIGINT,                    -- NULL: everyone in the channel controls
    updated_at           DOUBLE PRECISION NOT NULL               -- unix time
);
CREATE INDEX music_settings_stay ON music_settings (stay) WHERE stay = 1;
