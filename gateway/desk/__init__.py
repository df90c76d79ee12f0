"""The service desk: what agents and supervisors expect around a conversation.

Supervision (monitor, whisper, barge), consultations and warm transfers, wrap-up with
dispositions, customer history, offline messages, satisfaction surveys, canned
responses, not-ready reasons and holiday calendars. It sits on the core
(gateway.core.hooks is where it joins it) and is attached by the composition root;
gateway/desk/service.py is the front, docs/desk.md the reference.
"""
