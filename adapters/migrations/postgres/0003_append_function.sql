-- One round trip per group commit (issue 10, point 6): the position lock, each append's version
-- check, the rows and the wake-up in one function, called as one statement in autocommit — its
-- transaction commits when the statement ends. The rules are those of decision 0006: the
-- transaction-scoped advisory lock is taken before positions are assigned (MAX + 1), so positions
-- become visible in order. A volatile PL/pgSQL function takes a fresh snapshot for each statement,
-- so MAX(position) is read after the lock is held.
--
-- Appends are given in group order: a_streams[i] expects a_expected[i] and has a_counts[i] events,
-- which are the next a_counts[i] entries of the e_* arrays. One row is returned per append (its
-- index i):
-- `actual` is the stream's version before it (as stored, or as an earlier append of the group
-- left it); `first_position` is the position of its first event, NULL when `actual` is not the
-- expected version (a conflict: nothing of that append is written, the others are).
CREATE OR REPLACE FUNCTION meetline_append(
    lock_key        bigint,
    notify_channel  text,
    sleep_seconds   double precision,
    a_streams       text[],
    a_expected      bigint[],
    a_counts        int[],
    e_event_id      uuid[],
    e_type          text[],
    e_schema        int[],
    e_conference    uuid[],
    e_command       uuid[],
    e_correlation   uuid[],
    e_causation     uuid[],
    e_actor         text[],
    e_recorded      timestamptz[],
    e_data          text[]
) RETURNS TABLE (append_index int, actual bigint, first_position bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head      bigint;
    i         int;
    k         int;
    current_v bigint;
    offs      int := 0;
    inserted  boolean := false;
    seen      text[] := '{}';
    seen_v    bigint[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT COALESCE(MAX(position), 0) INTO head FROM events;
    FOR i IN 1 .. COALESCE(array_length(a_streams, 1), 0) LOOP
        k := array_position(seen, a_streams[i]);
        IF k IS NULL THEN
            SELECT COALESCE(MAX(version), 0) INTO current_v FROM events WHERE stream = a_streams[i];
            seen := seen || a_streams[i];
            seen_v := seen_v || current_v;
            k := array_length(seen, 1);
        ELSE
            current_v := seen_v[k];
        END IF;
        append_index := i;
        IF current_v <> a_expected[i] THEN
            actual := current_v;
            first_position := NULL;
        ELSE
            INSERT INTO events (position, stream, version, event_id, event_type, schema_version,
                                conference_id, command_id, correlation_id, causation_id, actor,
                                recorded_at, data)
            SELECT head + n, a_streams[i], current_v + n, e_event_id[offs + n], e_type[offs + n],
                   e_schema[offs + n], e_conference[offs + n], e_command[offs + n],
                   e_correlation[offs + n], e_causation[offs + n], e_actor[offs + n],
                   e_recorded[offs + n], e_data[offs + n]::jsonb
            FROM generate_series(1, a_counts[i]) AS n;
            actual := current_v;
            first_position := head + 1;
            head := head + a_counts[i];
            seen_v[k] := current_v + a_counts[i];
            inserted := inserted OR a_counts[i] > 0;
        END IF;
        offs := offs + a_counts[i];
        RETURN NEXT;
    END LOOP;
    IF inserted THEN
        PERFORM pg_notify(notify_channel, head::text);
    END IF;
    IF sleep_seconds > 0 THEN
        PERFORM pg_sleep(sleep_seconds);
    END IF;
END
$$;
