-- Every installation starts with the three usual environments; more can be added.
INSERT INTO environments (key, name, created_at) VALUES
    ('development', 'Development', 0),
    ('staging', 'Staging', 0),
    ('production', 'Production', 0);
