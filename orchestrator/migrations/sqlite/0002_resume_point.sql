-- Where an interrupted run could go on from (drivers that stream a program), as JSON:
-- {"next_line": N, "in_doubt": [..]}. NULL when the driver could not tell.
ALTER TABLE jobs ADD COLUMN resume_json TEXT;
