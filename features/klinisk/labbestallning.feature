# language: sv
@criterion:clin-lab-order
Egenskap: Labbeställning i webbklienten
  En användare på platsen loggar in med sitt HSA-id, söker fram en testpatient,
  beställer ett labbprov och ser beställningen i patientens lista.

  @per_site
  Scenario: En användare på platsen beställer ett labbprov på en testpatient
    Givet att en användare på platsen är inloggad i webbklienten
    När användaren söker fram en testpatient ur planen
    Och beställer labbprovet "P-CRP"
    Så visas beställningen "P-CRP" i patientens beställningslista
