"""The texts of the Piper voice goldens (written to ``tests/golden/`` by :mod:`exporters.piper.reference`).

* :data:`PHONEME_SENTENCES` - texts whose phonemes and ids piper-tts gives (``tests/golden/piper_phonemes.json``):
  numbers, money, times, dates, percentages, punctuation, abbreviations, questions, several sentences.
  Left out on purpose: texts ending in ".." or "...", "!!" or "?!" runs and clauses of punctuation
  alone (espeak-ng edge cases where the result depends on espeak's state, not on the text).
* :data:`CLOSED_LOOP_SENTENCES` - plain sentences a voice assistant would say, for speech -> Whisper round trips.
* :data:`WAVEFORM_SENTENCES` - short single sentences whose waveforms piper-tts writes (noise off).
"""

from __future__ import annotations

PHONEME_SENTENCES: list[str] = [
    # plain
    "The quick brown fox jumps over the lazy dog.",
    "Good morning, everyone.",
    "Please close the door behind you",
    # numbers
    "There are 7 days in a week and 12 months in a year.",
    "The population grew to 1,234,567 people.",
    "Pi is roughly 3.14159.",
    "She finished 21st out of 300 runners.",
    "The temperature dropped to -5 degrees overnight.",
    "Call me at 555-0123 after lunch.",
    "He scored 98 points in 2 games.",
    # money
    "The ticket costs $5.99 plus tax.",
    "They raised $1,000,000 for the new library.",
    "A coffee here is 4 dollars and 50 cents.",
    "The hotel charged €120 per night.",
    # times
    "The train leaves at 10:30 sharp.",
    "Set the alarm for 6:45 a.m. tomorrow.",
    "Dinner is served at 7 p.m. in the main hall.",
    # dates
    "The contract was signed on January 1st, 2024.",
    "She was born on March 3, 1999.",
    "The deadline is 12/25/2023.",
    "In 1969, humans first walked on the moon.",
    # percentages
    "Sales rose by 50% last quarter.",
    "The battery is at 12.5 percent.",
    "The test is 99.9% accurate.",
    # punctuation
    "First, we plan; then, we build.",
    "Bring three things: a pen, some paper, and a book.",
    "Stop right there!",
    "He said, \"I will be there soon.\"",
    "The meeting (which ran long) ended at noon.",
    "It's a well-known fact that cats don't like water.",
    "Wait, what did you say?",
    # abbreviations
    "Dr. Smith will see you now.",
    "Mr. and Mrs. Jones live on Elm St. near the park.",
    "He moved to the U.S.A. in 1990.",
    "The NASA launch was delayed by the FBI.",
    "Bring snacks, drinks, napkins, etc. to the picnic.",
    # questions
    "What time is it?",
    "Can you help me with this box?",
    "Where did you park the car, and when will you be back?",
    "Is it true that the store opens at 9 a.m. on Sundays?",
    # several sentences
    "Hello there. How are you today? I hope you're well!",
    "The store is closed. Please come back tomorrow.",
    "I have two questions. Who called? And why did they hang up?",
    "Turn left at the light. Then drive 2 miles. The house is on the right.",
    "Yes! We won the game. Let's celebrate tonight.",
]

CLOSED_LOOP_SENTENCES: list[str] = [
    "The weather today will be sunny with a high of 75 degrees.",
    "Your next meeting starts in fifteen minutes.",
    "I have added milk and eggs to your shopping list.",
    "The nearest pharmacy closes at 9 tonight.",
    "Traffic on the highway is light, so you should arrive on time.",
    "I set a timer for 10 minutes.",
    "Your package was delivered to the front door this afternoon.",
    "It will probably rain tomorrow morning, so take an umbrella.",
    "The museum is open every day except Monday.",
    "I could not find any flights to Denver before noon.",
    "Your battery is low, please plug in your phone.",
    "The recipe calls for two cups of flour and one cup of sugar.",
    "Here is the news from this morning.",
    "The library has three copies of that book available.",
    "Your dentist appointment is on Thursday at 4 in the afternoon.",
    "I turned off the lights in the kitchen and the living room.",
    "The bus to the airport leaves every 20 minutes.",
    "Remember to water the plants before you leave.",
    "There is a small coffee shop around the corner.",
    "The game was postponed because of the storm.",
    "Your flight has been moved to gate 12.",
    "I sent the photos to your sister an hour ago.",
    "The park will host a music festival this weekend.",
    "It takes about thirty minutes to walk to the station.",
]

WAVEFORM_SENTENCES: list[str] = [
    "Hello, world.",
    "I have 3 apples.",
    "Where is the train station?",
    "Thank you very much.",
]
