"""A small labelled text set for training a spam classifier in tests (the front doors' and the rules'
end-to-end tests train the same one)."""

SPAM = ["buy cheap followers now", "free crypto giveaway click here", "cheap followers for sale",
        "double your bitcoin today", "click here to win a prize", "get rich quick with crypto",
        "followers likes cheap fast", "limited offer free money", "win free gift card now",
        "earn money from home fast", "cheap likes and followers", "crypto giveaway send now"]
HAM = ["see you at the meeting tomorrow", "the book club meets on thursday", "happy birthday to my sister",
       "what a great match last night", "can you send me the notes", "the weather is lovely today",
       "i made pasta for dinner", "our cat learned a new trick", "the train was late again",
       "thanks for the help yesterday", "who is coming to the concert", "reading a good novel now"]
