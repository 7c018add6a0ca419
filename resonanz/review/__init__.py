"""Listen: the customer messages the bot missed go to a review queue; trainers label them (an
intent, entities) or discard them, and the labelled ones are exported as Rasa training data.

    collect   which turns are missed, and how a message is grouped with its kind (pure);
    queue     the queue in the database: groups with counts, one item with its conversation, labels;
    export    the labelled examples as a Rasa NLU YAML file (training_data/nlu/reviewed.yml);
    api       the console's and the admin's HTTP endpoints (trainers and admins).
"""
