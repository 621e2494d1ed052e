"""Where raw inputs come from: files and archives (`files`), SQS (`sqs`); each yields `consumer.core.Input`s."""
