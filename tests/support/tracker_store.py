"""Rasa's SQL tracker store table (`events`), as the engine creates it, for tests that seed it."""

EVENTS_DDL = ("CREATE TABLE IF NOT EXISTS events (id {pk}, sender_id VARCHAR(255) NOT NULL, "
              "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
              "action_name VARCHAR(255), data TEXT)")
