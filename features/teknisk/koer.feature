# language: sv
@traffic @criterion:tech-queues @system:new @needs:monitoring @needs:fhir_base @writes @per_site
Egenskap: Inga meddelanden i integrationsbryggans catch-all-kö
  På ett sjukhus hamnade över 11 000 beställningar i en okänd kö utan att någon märkte
  det. Efter platsens testtrafik (labbeställningar och remisser över gränsen enligt
  platsens rutiner) ska inget av platsens meddelanden under repetitionen ligga i bryggans
  catch-all-kö, och inget ska ha misslyckats.

  @id:tek-queues-01
  Scenario: Platsens meddelanden under repetitionen har alla en riktig mottagare
    Givet att platsens testtrafik har skickats
    När bryggans köer läses för platsen
    Så ligger inget av platsens meddelanden i catch-all-kön
    Och har inget av platsens meddelanden misslyckats
