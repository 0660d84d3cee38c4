"""The Gradio page, the top layer (it may import assistant/ and finetune/; nothing imports it but app.py).

    python app.py      # app.build() assembles these over one backend

plumbing   what every handler shares: errors -> messages (only assistant.errors.UserError is shown as
           itself), form values -> Brief and Sampler, Stop's bookkeeping
write      the Write tab (drafts, best of N, Continue, Export)
compare    the Compare tab (base vs a tuned model)
score      the Score tab (one or two pasted versions)
annotate   the Annotate tab (its logic is finetune/workbench.py)
api        the JSON API: /draft, /compare, /score
revise     the revision panel under the Write and Score tabs' tokens: alternatives at a token, rewrite from it,
           Undo, weak sentences, Suggest and Insert
api_revise its JSON endpoints: /alternatives, /rewrite, /undo, /weak_spots, /suggest, /insert
"""
