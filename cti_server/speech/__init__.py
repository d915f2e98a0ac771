"""Speech: what callers say, heard in menus and transcribed on calls.

- Events in: ``transcription`` (every answered call transcribed, live when there is room),
  ``audiosocket`` (Asterisk streams audio here), ``tap`` (one side of a call by ChanSpy).
- Service: ``decoder`` (one direction decoded into timed utterances), ``models`` (Vosk models by
  language, the user's own by path), ``pool`` (where recognisers run), ``recognizers`` (kept
  warm between streams, so a call's first words decode as fast as the rest), ``heard`` (what a
  listening heard, shared with the IVR).
- Redaction: ``text_redaction`` (cards, ids, phone numbers in text), ``redaction`` (transcript
  segments before they are stored or shown), ``desk_redaction`` (the same, as the UI's
  protocol).
- Health: ``metrics`` (transcription's back-pressure).
"""
