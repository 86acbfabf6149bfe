-- Alertmanager receivers limited to environments, as API tokens are: a JSON
-- array of environment keys; NULL (every receiver made before) acts in all.

ALTER TABLE alertmanager_receivers ADD COLUMN environments TEXT;
